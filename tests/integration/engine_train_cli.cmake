# `fairy-engine train fairy-tiny` end to end at a tiny scale: the preset's folder loads in the engine.
fairy_add_test(engine_train_cli_integration_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_train_cli_test.cpp
  TIMEOUT 300)
add_dependencies(engine_train_cli_integration_test fairy-engine)
