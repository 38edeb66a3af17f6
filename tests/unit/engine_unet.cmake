# engine-unet: UNet, Fairy anchor attention, AnchorCache (golden pix2pix-tiny fixtures).
fairy_add_test(engine_unet_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_unet_test.cpp
  LIBS fairy_engine)
# The InstructPix2Pix pipeline and Fairy's anchor/frame passes on pix2pix-tiny.
fairy_add_test(engine_unet_pipeline_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_unet_pipeline_test.cpp
  LIBS fairy_engine)
