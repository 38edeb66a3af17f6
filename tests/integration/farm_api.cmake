fairy_add_test(farm_api_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/farm_api_test.cpp
  LIBS fairy_api
  TIMEOUT 60)
