# The fuzz targets as ctest tests of the main build: each runs for a short, fixed time
# (MATBERT_FUZZ_SECONDS) from its seeds in fuzz/corpus/<name>/, which include every input that
# once crashed it. New inputs go to build/sanitize/fuzz/work/<name>/, never into the source tree.
set(MATBERT_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz target runs under ctest")
include(${CMAKE_CURRENT_LIST_DIR}/targets.cmake)
set(work_dirs)
foreach(name ${MATBERT_FUZZ_NAMES})
  set(work ${MATBERT_SANITIZE_DIR}/fuzz/work/${name})
  list(APPEND work_dirs ${work})
  add_test(NAME fuzz.${name}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
            ${MATBERT_SANITIZE_DIR}/fuzz/${name} -max_total_time=${MATBERT_FUZZ_SECONDS}
            -timeout=20 -rss_limit_mb=4096 -print_final_stats=1
            -artifact_prefix=${MATBERT_SANITIZE_DIR}/fuzz/${name}- ${work}
            ${CMAKE_CURRENT_LIST_DIR}/corpus/${name})
  set_tests_properties(fuzz.${name} PROPERTIES FIXTURES_REQUIRED fuzz_work)
endforeach()
add_test(NAME fuzz.work_dirs COMMAND ${CMAKE_COMMAND} -E make_directory ${work_dirs})
set_tests_properties(fuzz.work_dirs PROPERTIES FIXTURES_SETUP fuzz_work)
