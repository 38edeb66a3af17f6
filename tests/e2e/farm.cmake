# End-to-end farm tests: real redis-server, fairy-coordinator, fairy-worker and fairy-engine
# processes (built first), a real clip and the embedded fairy-tiny model.
fairy_add_test(farm_e2e_test LABEL e2e
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/farm_e2e_test.cpp ${CMAKE_CURRENT_LIST_DIR}/farm_harness.cpp
  LIBS fairy_api fairy_protocol fairy_media fairy_redis PkgConfig::ZMQ cppzmq
  TIMEOUT 1800)
add_dependencies(farm_e2e_test fairy-coordinator fairy-worker fairy-engine)
