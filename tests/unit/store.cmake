# The Store contract against MemoryStore (unit). The same source runs against a real
# redis-server in tests/integration/store.cmake.
fairy_add_test(store_contract_memory_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_contract_test.cpp
  LIBS fairy_store)
