#pragma once
// Figures: oodtrain draws them with scripts/oodt_plot.py (matplotlib), which travels inside the
// binary, so a moved or installed oodtrain needs no source tree.
#include <string>
#include <vector>

namespace oodt {

// Draws the figure `kind` of `input` into every path of `outputs` (the extension picks the
// format: .png, .svg, .pdf) by running the embedded script with $OODT_PYTHON, else
// /usr/bin/python3:
//   bars, curves  the JSON `oodtrain collect` writes; wiseft  interpolate's interpolation.csv;
//   soup          the .json summary `oodtrain soup` writes beside the soup.
// `extra` goes to the script's command line as is (e.g. {"--method", "oracle"} for bars).
// Throws DataError when the interpreter or matplotlib is missing, or when the script fails
// (with the end of what it wrote to stderr).
void plot(const std::string& kind, const std::string& input, const std::vector<std::string>& outputs,
          const std::vector<std::string>& extra = {});

// The text of scripts/oodt_plot.py, embedded at build time (cmake/EmbedText.cmake).
const char* oodt_plot_script();

}  // namespace oodt
