# embed_text(<out.cpp> <symbol> <file>): a C++ source defining `const char* oodt::<symbol>()`
# that returns the file's text, regenerated when the file changes. Templates and other text the
# binary needs at run time live as files in the tree and travel inside the binary.
function(embed_text out symbol file)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${out} -DSYMBOL=${symbol} -P ${PROJECT_SOURCE_DIR}/cmake/EmbedTextRun.cmake
    DEPENDS ${file} ${PROJECT_SOURCE_DIR}/cmake/EmbedTextRun.cmake
    COMMENT "Embedding ${file}")
endfunction()
