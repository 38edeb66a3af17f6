fairy_add_test(train_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/train_ops_test.cpp ${CMAKE_CURRENT_LIST_DIR}/train_augment_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/train_models_test.cpp
  LIBS fairy_train)
