# farm: the worker's EngineExecutor on a real clip, the pix2pix-tiny model and a real redis-server.
fairy_add_test(worker_executor_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_executor_test.cpp
  LIBS fairy_worker
  TIMEOUT 300)
