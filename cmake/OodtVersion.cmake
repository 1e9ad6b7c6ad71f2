# Generates oodt_git_revision.cpp on every build (rewritten only when the revision changes,
# so nothing recompiles needlessly). Checkpoints and run directories record it.
set(OODT_GIT_REVISION_CPP ${CMAKE_BINARY_DIR}/generated/oodt_git_revision.cpp)
add_custom_target(oodt_git_revision
  COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DOUT=${OODT_GIT_REVISION_CPP}
          -P ${CMAKE_SOURCE_DIR}/cmake/GitRevision.cmake
  BYPRODUCTS ${OODT_GIT_REVISION_CPP}
  COMMENT "Recording the git revision"
  VERBATIM)
# Also at configure time, so the file exists before the first build.
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DOUT=${OODT_GIT_REVISION_CPP}
                -P ${CMAKE_SOURCE_DIR}/cmake/GitRevision.cmake)
