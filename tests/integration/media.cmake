# Media layer integration tests: real clips from ../shared/media, real FFmpeg (library and CLI).
fairy_add_test(media_integration_test LABEL integration
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/media_probe_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/media_range_test.cpp
  LIBS fairy_media nlohmann_json::nlohmann_json
  TIMEOUT 300)
fairy_add_test(media_encode_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/media_encode_test.cpp
  LIBS fairy_media nlohmann_json::nlohmann_json
  TIMEOUT 300)
fairy_add_test(media_scenedetect_test LABEL integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/media_scenedetect_test.cpp
  LIBS fairy_media nlohmann_json::nlohmann_json
  TIMEOUT 300)
