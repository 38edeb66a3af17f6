# Job files (fairy_jobs) and `fairy validate`.
fairy_add_test(jobs_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/jobs_test.cpp
  LIBS fairy_jobs TIMEOUT 60)
