# engine-tokenizer: the CLIP BPE tokenizer (every tokens.json row through the library API, special
# tokens, truncation, Unicode edge cases, invalid UTF-8, load errors).
fairy_add_test(engine_tokenizer_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_tokenizer_test.cpp
  LIBS fairy_engine)
# The CLI on the shared fixture for the tokenize kind (tokens, text_tokenize; tokens_ftfy SKIPs).
add_test(NAME engine_verify_tokenize
  COMMAND $<TARGET_FILE:fairy-engine> verify ${FAIRY_SHARED_DIR}/fixtures/pix2pix-tiny
          --only tokenize)
set_tests_properties(engine_verify_tokenize PROPERTIES LABELS unit TIMEOUT 120)
