# engine-tokenizer: the CLIP BPE tokenizer (every tokens.json row through the library API, special
# tokens, truncation, Unicode edge cases, invalid UTF-8, load errors).
fairy_add_test(engine_tokenizer_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_tokenizer_test.cpp
  LIBS fairy_engine)
