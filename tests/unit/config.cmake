# Cluster config (fairy_config): default files, validation, command-line overrides.
fairy_add_test(config_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp
  LIBS fairy_config TIMEOUT 60)
