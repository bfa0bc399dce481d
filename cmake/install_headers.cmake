# install(SCRIPT): copies the public headers to <prefix>/include/tessera/<floor>/ with their
# includes of each other written as "tessera/<floor>/x.h", so that a user's include path holds only
# <prefix>/include and every tessera header is reached as <tessera/...> (no bare core/, data/, ...
# that could clash with a user's own folders). In the source tree the same headers say
# "core/x.h", relative to the repository root. TESSERA_SOURCE_DIR is set by the install(CODE)
# before this script.
set(floors core core/cuda kernels autograd layers optim distributed data models eval)
set(dest "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/include/tessera")
set(headers tessera.h)
foreach(dir ${floors})
  file(GLOB found RELATIVE ${TESSERA_SOURCE_DIR} ${TESSERA_SOURCE_DIR}/${dir}/*.h ${TESSERA_SOURCE_DIR}/${dir}/*.cuh)
  list(APPEND headers ${found})
endforeach()
file(REMOVE_RECURSE ${dest})
foreach(h ${headers})
  file(READ ${TESSERA_SOURCE_DIR}/${h} text)
  string(REGEX REPLACE "#include \"(core|kernels|autograd|layers|optim|distributed|data|models|eval)/" "#include \"tessera/\\1/" text "${text}")
  get_filename_component(sub ${h} DIRECTORY)
  file(MAKE_DIRECTORY ${dest}/${sub})
  file(WRITE ${dest}/${h} "${text}")
endforeach()
list(LENGTH headers n)
message(STATUS "Installed ${n} headers to ${dest} (reached as <tessera/...>)")
