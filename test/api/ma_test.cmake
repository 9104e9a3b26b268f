# Helpers shared by test/api, test/stress and test/death (include()d by
# each): the include directories, and the -DUSE_STD=1 flavour that calls the
# standard names and runs with LD_PRELOAD=libmapalloc.so.
set(MA_TEST_SHARED_DIR ${CMAKE_CURRENT_LIST_DIR})

# ma_test_includes(target): mapalloc.h, check.h and ma_test.h.
function(ma_test_includes target)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/include
                             ${PROJECT_SOURCE_DIR}/test ${MA_TEST_SHARED_DIR})
endfunction()

# ma_test_std(target): calls malloc/free/... (USE_STD=1). The compiler must
# not treat them as builtins, or it folds malloc(SIZE_MAX) == NULL, drops
# malloc/free pairs and warns about the misuses the death tests commit.
function(ma_test_std target)
  ma_test_includes(${target})
  target_compile_definitions(${target} PRIVATE USE_STD=1)
  foreach(fn malloc calloc realloc free reallocarray posix_memalign
             aligned_alloc memalign valloc pvalloc)
    target_compile_options(${target} PRIVATE -fno-builtin-${fn})
  endforeach()
  add_dependencies(${target} mapalloc)
endfunction()

# ma_test_pair(prefix SOURCE src LABEL label [TIMEOUT s] [ARGS ...] [ENV ...]
#              [PRELOAD_LIBS ...]): one source as two tests, ${prefix}_ma
# (the ma_ names: mapalloc_ma, beside glibc's malloc) and ${prefix}_preload
# (the standard names, under LD_PRELOAD; linked with PRELOAD_LIBS, default
# the dl library, or mapalloc for a program that also reads ma_stats_get).
function(ma_test_pair prefix)
  cmake_parse_arguments(P "" "SOURCE;LABEL;TIMEOUT" "ARGS;ENV;PRELOAD_LIBS" ${ARGN})
  if(NOT P_TIMEOUT)
    set(P_TIMEOUT 120)
  endif()
  if(NOT P_PRELOAD_LIBS)
    set(P_PRELOAD_LIBS ${CMAKE_DL_LIBS})
  endif()
  ma_add_test(${prefix}_ma SOURCES ${P_SOURCE} LIBS mapalloc_ma LABELS ${P_LABEL}
              TIMEOUT ${P_TIMEOUT} ARGS ${P_ARGS} ENV ${P_ENV})
  ma_test_includes(${prefix}_ma)
  ma_add_test(${prefix}_preload SOURCES ${P_SOURCE} LIBS ${P_PRELOAD_LIBS}
              LABELS "${P_LABEL};preload" PRELOAD TIMEOUT ${P_TIMEOUT} ARGS ${P_ARGS} ENV ${P_ENV})
  ma_test_std(${prefix}_preload)
endfunction()
