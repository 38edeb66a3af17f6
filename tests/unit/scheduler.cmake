fairy_add_test(scheduler_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/scheduler_graph_test.cpp ${CMAKE_CURRENT_LIST_DIR}/scheduler_failure_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/scheduler_records_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/scheduler_stall_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/scheduler_models_test.cpp
  LIBS fairy_scheduler)
