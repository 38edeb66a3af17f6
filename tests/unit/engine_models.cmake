# engine-models: CLIP text encoder and AutoencoderKL (golden pix2pix-tiny fixtures, bad model folders).
fairy_add_test(engine_models_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_models_test.cpp
  LIBS fairy_engine)
# The CLI on the shared fixture for the model kinds.
add_test(NAME engine_models_verify
  COMMAND $<TARGET_FILE:fairy-engine> verify ${FAIRY_SHARED_DIR}/fixtures/pix2pix-tiny
          --only text_encoder,vae_encode,vae_decode)
set_tests_properties(engine_models_verify PROPERTIES LABELS unit TIMEOUT 120)
