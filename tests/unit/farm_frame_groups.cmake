fairy_add_test(farm_frame_groups_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/farm_frame_groups_test.cpp
  LIBS fairy_engine_frames)
