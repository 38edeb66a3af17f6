# engine-unet: UNet, Fairy anchor attention, AnchorCache (golden pix2pix-tiny fixtures).
fairy_add_test(engine_unet_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_unet_test.cpp
  LIBS fairy_engine)
