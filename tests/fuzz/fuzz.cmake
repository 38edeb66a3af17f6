# libFuzzer target for the job-file parser. The project builds with g++, so the fuzzer is built by
# a separate clang++ invocation (-fsanitize=fuzzer,address,undefined) from the parser's sources,
# when FAIRY_BUILD_FUZZ is ON and clang++ is installed. The test runs it briefly on the seed corpus
# (tests/fuzz/corpus); new inputs it finds go to the build tree, never the source tree.
find_program(FAIRY_CLANGXX NAMES clang++ clang++-14 clang++-15 clang++-16)
if(FAIRY_BUILD_FUZZ AND FAIRY_CLANGXX)
  set(_fuzz_sources
    ${CMAKE_CURRENT_LIST_DIR}/job_parser_fuzzer.cpp
    ${PROJECT_SOURCE_DIR}/jobs/job_parser.cpp
    ${PROJECT_SOURCE_DIR}/jobs/storage_paths.cpp
    ${PROJECT_SOURCE_DIR}/config/diagnostics.cpp
    ${PROJECT_SOURCE_DIR}/config/yaml_reader.cpp
    ${PROJECT_SOURCE_DIR}/common/status.cpp)
  set(_fuzz_bin ${CMAKE_BINARY_DIR}/tests/job_parser_fuzzer)
  add_custom_command(OUTPUT ${_fuzz_bin}
    COMMAND ${FAIRY_CLANGXX} -std=c++20 -O1 -g -fno-omit-frame-pointer
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
            -I${PROJECT_SOURCE_DIR} ${_fuzz_sources} -lyaml-cpp -o ${_fuzz_bin}
    DEPENDS ${_fuzz_sources}
      ${PROJECT_SOURCE_DIR}/jobs/job_parser.h ${PROJECT_SOURCE_DIR}/jobs/job_spec.h
      ${PROJECT_SOURCE_DIR}/jobs/storage_paths.h ${PROJECT_SOURCE_DIR}/config/diagnostics.h
      ${PROJECT_SOURCE_DIR}/config/yaml_reader.h ${PROJECT_SOURCE_DIR}/common/status.h
    COMMENT "Building job_parser_fuzzer with clang++ (libFuzzer)"
    VERBATIM)
  add_custom_target(job_parser_fuzzer ALL DEPENDS ${_fuzz_bin})
  # Fails on any crash, sanitizer report, out-of-memory or leak; timeouts are reported and ignored
  # (the script says why). A fresh work folder each run; new inputs never go to the source tree.
  add_test(NAME job_parser_fuzz
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run_job_parser_fuzz.sh ${_fuzz_bin}
            ${CMAKE_BINARY_DIR}/tests/fuzz-corpus ${CMAKE_CURRENT_LIST_DIR}/corpus)
  set_tests_properties(job_parser_fuzz PROPERTIES LABELS fuzz TIMEOUT 120)
elseif(FAIRY_BUILD_FUZZ)
  message(STATUS "clang++ not found: the job-file fuzzer is not built")
endif()
