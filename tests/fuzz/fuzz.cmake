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
  # Fails on any crash, sanitizer report, out-of-memory or leak. Timeouts are reported but do not
  # fail the test (-fork=1 -ignore_timeouts=1): yaml-cpp 0.7 still loops forever on some malformed
  # inputs that the pre-scan in config/yaml_reader.cpp does not catch (docs/job-files.md, "Known
  # limits"). A fresh work folder each run; new inputs never go to the source tree.
  set(_fuzz_work ${CMAKE_BINARY_DIR}/tests/fuzz-corpus)
  add_test(NAME job_parser_fuzz
    COMMAND sh -c "rm -rf '${_fuzz_work}' && mkdir -p '${_fuzz_work}' && exec '${_fuzz_bin}' -fork=1 -ignore_timeouts=1 -ignore_ooms=0 -ignore_crashes=0 -seed=1 -max_total_time=20 -timeout=3 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=4096 -artifact_prefix='${CMAKE_BINARY_DIR}/tests/fuzz-' '${_fuzz_work}' '${CMAKE_CURRENT_LIST_DIR}/corpus'")
  set_tests_properties(job_parser_fuzz PROPERTIES LABELS fuzz TIMEOUT 120)
elseif(FAIRY_BUILD_FUZZ)
  message(STATUS "clang++ not found: the job-file fuzzer is not built")
endif()
