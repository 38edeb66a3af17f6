# The Store contract (tests/unit/store_contract_test.cpp) against RedisStore on a private redis-server.
fairy_add_test(store_contract_redis_test LABEL integration
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/store_contract_test.cpp
  LIBS fairy_store TIMEOUT 120)
target_compile_definitions(store_contract_redis_test PRIVATE FAIRY_STORE_BACKEND_REDIS=1)
fairy_add_test(store_durability_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_durability_test.cpp
  LIBS fairy_store TIMEOUT 120)
