fairy_add_test(engine_core_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_core_test.cpp
  LIBS fairy_engine)
# Every golden check of the shared fixture through the CLI: tokenizer, text encoder, VAE, scheduler,
# UNet, the InstructPix2Pix pipeline, Fairy's anchor and frame passes (tokens_ftfy SKIPs).
fairy_add_shared_test(engine_verify NEEDS fixtures/pix2pix-tiny/golden/manifest.json
  COMMAND $<TARGET_FILE:fairy-engine> verify @shared@/fixtures/pix2pix-tiny)
set_tests_properties(engine_verify PROPERTIES LABELS unit TIMEOUT 300)
