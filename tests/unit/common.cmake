fairy_add_test(common_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/status_test.cpp ${CMAKE_CURRENT_LIST_DIR}/safetensors_test.cpp
  LIBS fairy_common)
