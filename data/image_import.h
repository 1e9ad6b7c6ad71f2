#pragma once
// `oodtrain data import`: an image dataset as researchers have it on disk, in one HDF5 domain
// file (docs/data.md, "Image datasets").
//   - DomainBed's layout: ROOT/<domain>/<class>/**/*.{jpg,jpeg,png} (PACS, VLCS, OfficeHome,
//     TerraIncognita, DomainNet as DomainBed's download script leaves them);
//   - a manifest: a CSV with columns path, label, domain and optionally split (WILDS-style).
// The encoded bytes are stored as they are, one uint8 array plus offsets (no variable-length
// HDF5 types), or decoded to a fixed size with `--decode HxW`. Every image is decoded once
// while importing, so a corrupt file is found here, not mid-run.
#include <cstdint>
#include <string>
#include <vector>

namespace oodt {

struct ImportOptions {
  std::string source;           // a folder (DomainBed layout) or a .csv manifest
  std::string out;              // the HDF5 file to write
  std::string root;             // manifest: base of relative paths (default: the CSV's folder)
  std::string name;             // pacs | vlcs | officehome | terraincognita | domainnet: check names
                                // (empty: recognised by the domain names, else not checked)
  int64_t decode_h = 0, decode_w = 0;  // > 0: store decoded uint8 [N, 3, H, W] resized to H x W
  int threads = 0;              // 0: every core
  bool skip_bad = false;        // unreadable images are skipped and listed instead of failing
  bool allow_missing_classes = false;  // domains may lack some classes (the union is used)
  bool progress = true;         // a progress line on stderr
};

struct ImportReport {
  int64_t images = 0;
  int64_t bytes_read = 0, bytes_written = 0;
  double seconds = 0;
  std::vector<std::string> domains, classes;
  std::string dataset;                 // the recognised layout, if any
  std::vector<std::string> skipped;    // "path: reason" of unreadable images (--skip-bad)
  std::vector<std::string> ignored;    // files that are not .jpg/.jpeg/.png (listed, not read)
  std::vector<std::string> notes;      // e.g. grayscale/CMYK/16-bit images converted at read time
};

// Imports; DataError (naming the file and the problem) or ConfigError on bad input.
ImportReport import_images(const ImportOptions& options);

// The known DomainBed datasets: names accepted by ImportOptions::name.
std::vector<std::string> known_image_datasets();

}  // namespace oodt
