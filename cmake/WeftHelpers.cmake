# weft_library(NAME SOURCES ... DEPS ...): module NAME, compiled once into an object library
# weft_NAME_objects, from which come a static library weft_NAME (alias weft::NAME, for the tests
# and tools) and, with the other modules and the C ABI, the one shared library libweft.so
# (src/capi), so that a process holds one copy of the process-wide state whoever loads it.
function(weft_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(weft_${name}_objects OBJECT ${ARG_SOURCES})
  target_include_directories(weft_${name}_objects PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(weft_${name}_objects PUBLIC ${ARG_DEPS})
  # The C++ API is exported from libweft.so; calls inside it stay direct (no interposition).
  set_target_properties(weft_${name}_objects PROPERTIES CXX_VISIBILITY_PRESET default VISIBILITY_INLINES_HIDDEN OFF)
  target_compile_options(weft_${name}_objects PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-semantic-interposition>)
  add_library(weft_${name} STATIC $<TARGET_OBJECTS:weft_${name}_objects>)
  add_library(weft::${name} ALIAS weft_${name})
  target_include_directories(weft_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:include>)
  target_link_libraries(weft_${name} PUBLIC ${ARG_DEPS})
  set_property(GLOBAL APPEND PROPERTY WEFT_MODULES ${name})
endfunction()

# weft_test(NAME SOURCES ... DEPS ... [SERIAL] [LABELS ...]): a GoogleTest executable run by ctest.
function(weft_test name)
  cmake_parse_arguments(ARG "SERIAL" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main Threads::Threads)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
  if(ARG_SERIAL)
    set_tests_properties(${name} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()
