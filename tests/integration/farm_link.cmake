fairy_add_test(farm_link_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/farm_link_test.cpp
  LIBS fairy_router_link fairy_dealer_link PkgConfig::ZMQ cppzmq
  TIMEOUT 60)
