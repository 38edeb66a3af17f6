fairy_add_test(farm_coordinator_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/farm_coordinator_test.cpp
  LIBS fairy_coordinator fairy_worker_runner fairy_dealer_link fairy_media fairy_anchor_store fairy_redis
  TIMEOUT 300)
