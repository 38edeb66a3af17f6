fairy_add_test(protocol_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/protocol_test.cpp
  LIBS fairy_protocol)
