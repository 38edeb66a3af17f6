# libFuzzer target for the worker protocol decoder (clang only): build with
#   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang
# and run build-fuzz/tests/protocol_fuzz -max_total_time=60. The ctest entry runs 20,000 inputs.
if(FAIRY_BUILD_FUZZ AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  add_executable(protocol_fuzz ${CMAKE_CURRENT_LIST_DIR}/protocol_fuzz.cpp)
  target_link_libraries(protocol_fuzz PRIVATE fairy_protocol)
  target_compile_options(protocol_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(protocol_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  set_target_properties(protocol_fuzz PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME protocol_fuzz COMMAND protocol_fuzz -runs=20000 -seed=1)
  set_tests_properties(protocol_fuzz PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
