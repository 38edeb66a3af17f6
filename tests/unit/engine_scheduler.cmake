# engine-scheduler: Euler ancestral / Euler schedulers (golden pix2pix-tiny schedules and steps,
# bad configs, batched steps, hand-computed Euler and v_prediction values).
fairy_add_test(engine_scheduler_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_scheduler_test.cpp
  LIBS fairy_engine)
