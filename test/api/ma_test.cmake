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
