# engine-unet: `fairy-engine edit` end to end (real FFmpeg, the pix2pix-tiny model).
fairy_add_test(engine_edit_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_edit_test.cpp
  TIMEOUT 600)
add_dependencies(engine_edit_integration_test fairy-engine)
