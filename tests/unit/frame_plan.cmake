fairy_add_test(frame_plan_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/frame_plan_test.cpp
  LIBS fairy_frame_plan)
