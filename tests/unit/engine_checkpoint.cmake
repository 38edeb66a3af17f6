# engine-checkpoint: checkpoint layouts (original single file, pre-0.14 diffusers names, fp16
# variants), conversion, architecture inference and bad checkpoints, against pix2pix-tiny's goldens.
fairy_add_test(engine_checkpoint_test LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_checkpoint_test.cpp
  LIBS fairy_engine)
add_dependencies(engine_checkpoint_test fairy-engine)
