fairy_add_test(farm_worker_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/farm_worker_test.cpp
  LIBS fairy_worker_runner fairy_router_link
  TIMEOUT 60)
