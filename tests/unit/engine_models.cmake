# engine-models: CLIP text encoder and AutoencoderKL (golden pix2pix-tiny fixtures, bad model folders).
fairy_add_test(engine_models_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_models_test.cpp
  LIBS fairy_engine)
