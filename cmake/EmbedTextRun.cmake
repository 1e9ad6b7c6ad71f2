# Script mode for embed_text (cmake/EmbedText.cmake): IN, OUT, SYMBOL.
file(READ ${IN} text HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${text}")
file(WRITE ${OUT} "// Generated from ${IN}; do not edit.\nnamespace oodt {\nnamespace {\nconst char kText[] = {${bytes} 0};\n}  // namespace\nconst char* ${SYMBOL}() { return kText; }\n}  // namespace oodt\n")
