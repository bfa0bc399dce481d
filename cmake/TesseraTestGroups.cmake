# tessera_add_test_groups(<target> [TIMEOUT <s>] [ENVIRONMENT <VAR=value>...])
#
# Registers a gtest binary with ctest one group at a time: a group is a test suite, or one test of a
# value-parameterised suite over all its parameters (e.g. `Elementwise/OpTest.Float32`). After each
# build, the binary's --gtest_list_tests is turned into add_test() calls (as gtest_discover_tests
# does, but per group). One process per test case spent more time starting processes than testing
# under AddressSanitizer (0.15 s a start, 1,700 starts). tests/test_main.cpp keeps skips exact: a
# group skips as a whole (ctest reports it Skipped) or not at all.
set(_TESSERA_TEST_GROUPS_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/tessera_test_groups_discover.cmake)

function(tessera_add_test_groups target)
  cmake_parse_arguments(A "" "TIMEOUT" "ENVIRONMENT" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 600)
  endif()
  set(ctest_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_groups.cmake)
  set(include_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_groups_include.cmake)
  set(env ${A_ENVIRONMENT} TESSERA_TEST_GROUP=1)
  string(REPLACE ";" "|" env "${env}")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -DTEST_EXECUTABLE=$<TARGET_FILE:${target}> -DCTEST_FILE=${ctest_file}
            -DWORKING_DIR=${CMAKE_CURRENT_BINARY_DIR} -DTIMEOUT=${A_TIMEOUT} -DENVIRONMENT=${env}
            -P ${_TESSERA_TEST_GROUPS_SCRIPT}
    BYPRODUCTS ${ctest_file}
    VERBATIM)
  file(WRITE ${include_file}
    "if(EXISTS \"${ctest_file}\")\n  include(\"${ctest_file}\")\nelse()\n  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${include_file})
endfunction()
