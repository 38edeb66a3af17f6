fairy_add_test(engine_core_unit_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_core_test.cpp
  LIBS fairy_engine)
# The CLI on the shared fixture, limited to the kinds that exist in every build so far.
add_test(NAME engine_core_verify_randn
  COMMAND $<TARGET_FILE:fairy-engine> verify ${FAIRY_SHARED_DIR}/fixtures/pix2pix-tiny --only randn)
set_tests_properties(engine_core_verify_randn PROPERTIES LABELS unit TIMEOUT 120)
