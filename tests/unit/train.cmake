fairy_add_test(train_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/train_ops_test.cpp ${CMAKE_CURRENT_LIST_DIR}/train_augment_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/train_models_test.cpp
  LIBS fairy_train)
# The trainer needs the engine's UNet; registered once fairy_engine compiles unet.cpp (transitional
# guard while the engine's CMake lands).
get_target_property(_fairy_engine_sources fairy_engine SOURCES)
if("unet.cpp" IN_LIST _fairy_engine_sources)
  fairy_add_test(train_run_test LABEL unit
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/train_run_test.cpp
    LIBS fairy_train TIMEOUT 600)
endif()
