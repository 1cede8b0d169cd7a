# Finds LibTorch (Debian's libtorch-dev 1.13, or the LibTorch 2.x inside PyPI's torch wheel when
# Torch_DIR points there) and says which one. MATBERT_LIBTORCH ("libtorch-X.Y.Z") tags the
# trainer tests' names so that test output shows which build ran.
#
# For the wheel, configuring with -DTorch_DIR=<site-packages>/torch/share/cmake/Torch is enough:
# the settings below keep its Caffe2 and libraries ahead of a system libtorch-dev, give its CUDA
# setup a target architecture instead of probing for a GPU (Hopper, the GPU hosts' kind), and
# point it at the wheel's own NVRTC.
if(Torch_DIR AND EXISTS ${Torch_DIR}/../../../../nvidia/cu13/lib/libcudart.so.13)
  get_filename_component(MATBERT_TORCH_WHEEL ${Torch_DIR}/../../.. ABSOLUTE)
  list(PREPEND CMAKE_PREFIX_PATH ${MATBERT_TORCH_WHEEL})
  set(Caffe2_DIR ${MATBERT_TORCH_WHEEL}/share/cmake/Caffe2 CACHE PATH "" FORCE)
  set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "CUDA architectures for LibTorch's flags")
  set(CUDA_NVRTC_LIB ${MATBERT_TORCH_WHEEL}/../nvidia/cu13/lib/libnvrtc.so.13 CACHE FILEPATH "")
endif()
find_package(Torch REQUIRED)
message(STATUS "LibTorch ${Torch_VERSION}: ${Torch_DIR}")
set(MATBERT_LIBTORCH "libtorch-${Torch_VERSION}")

# The wheel carries its own CUDA runtime and NVRTC (site-packages/nvidia/cu13/lib), which its
# libtorch_cuda.so was built against and finds through its RPATH; link those rather than the
# machine's toolkit, so that one process never loads two different libcudart.so.13. The
# toolkit still provides nvcc and the headers, which TorchConfig requires.
set(MATBERT_TORCH_NVIDIA_DIR ${TORCH_INSTALL_PREFIX}/../nvidia)
if(EXISTS ${MATBERT_TORCH_NVIDIA_DIR}/cu13/lib/libcudart.so.13 AND TARGET CUDA::cudart)
  set_target_properties(CUDA::cudart PROPERTIES
    IMPORTED_LOCATION ${MATBERT_TORCH_NVIDIA_DIR}/cu13/lib/libcudart.so.13)
  if(TARGET CUDA::nvrtc)
    set_target_properties(CUDA::nvrtc PROPERTIES
      IMPORTED_LOCATION ${MATBERT_TORCH_NVIDIA_DIR}/cu13/lib/libnvrtc.so.13)
  endif()
  if(TARGET caffe2::nvrtc_runtime)
    set_property(TARGET caffe2::nvrtc_runtime PROPERTY INTERFACE_LINK_LIBRARIES
      ${MATBERT_TORCH_NVIDIA_DIR}/cu13/lib/libnvrtc.so.13)
  endif()
  message(STATUS "LibTorch's CUDA runtime: ${MATBERT_TORCH_NVIDIA_DIR}/cu13/lib (torch wheel)")
endif()
