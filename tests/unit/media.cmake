# Media layer unit tests: pure functions (sizes, HSV, ContentDetector filter, shots, anchors).
fairy_add_test(media_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/media_test.cpp
  LIBS fairy_media)
