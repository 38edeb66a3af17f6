fairy_add_test(anchor_store_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/anchor_store_test.cpp
  LIBS fairy_anchor_store TIMEOUT 120)
