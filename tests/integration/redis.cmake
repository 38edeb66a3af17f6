fairy_add_test(redis_client_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_client_test.cpp
  LIBS fairy_redis TIMEOUT 120)
