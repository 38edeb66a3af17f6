# engine-scheduler: Euler ancestral / Euler schedulers (golden pix2pix-tiny schedules and steps,
# bad configs, batched steps, hand-computed Euler and v_prediction values).
fairy_add_test(engine_scheduler_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_scheduler_test.cpp
  LIBS fairy_engine)
# The CLI on the shared fixture for the scheduler kinds (the optional leading/trailing checks run).
add_test(NAME engine_scheduler_verify
  COMMAND $<TARGET_FILE:fairy-engine> verify ${FAIRY_SHARED_DIR}/fixtures/pix2pix-tiny
          --only scheduler_schedule,scheduler_step)
set_tests_properties(engine_scheduler_verify PROPERTIES LABELS unit TIMEOUT 120)
