# Job files (fairy_jobs) and `fairy validate`.
fairy_add_test(jobs_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/jobs_test.cpp
  LIBS fairy_jobs TIMEOUT 60)
fairy_add_test(jobs_validate_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/jobs_validate_test.cpp
  LIBS nlohmann_json::nlohmann_json TIMEOUT 60)
add_dependencies(jobs_validate_test fairy)
