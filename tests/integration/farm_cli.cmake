fairy_add_test(farm_cli_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/farm_cli_test.cpp
  LIBS fairy_api
  TIMEOUT 120)
add_dependencies(farm_cli_integration_test fairy)
