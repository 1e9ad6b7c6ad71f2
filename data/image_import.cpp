#include "data/image_import.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/csv.h"
#include "core/error.h"
#include "core/h5.h"
#include "data/augment.h"
#include "data/image_codec.h"

namespace oodt {
namespace fs = std::filesystem;

namespace {

struct Item {
  std::string path;      // as found (absolute or relative to the working directory)
  std::string display;   // relative to the source, for messages and /image_paths
  int64_t domain = 0, label = 0;
  int64_t split = -1;    // manifest's split column, index into split_names
  int64_t size = 0;      // bytes
};

// DomainBed's datasets: their environment folders and class folders as the download script
// leaves them (an empty class list: only the count is checked).
struct KnownDataset {
  std::string name;
  std::vector<std::string> domains;
  std::vector<std::string> classes;
  size_t class_count;
};
const std::vector<KnownDataset>& known() {
  static const std::vector<KnownDataset> k = {
      {"pacs", {"art_painting", "cartoon", "photo", "sketch"}, {"dog", "elephant", "giraffe", "guitar", "horse", "house", "person"}, 7},
      {"vlcs", {"Caltech101", "LabelMe", "SUN09", "VOC2007"}, {"bird", "car", "chair", "dog", "person"}, 5},
      {"officehome", {"Art", "Clipart", "Product", "Real World"}, {}, 65},
      {"terraincognita", {"location_100", "location_38", "location_43", "location_46"},
       {"bird", "bobcat", "cat", "coyote", "dog", "empty", "opossum", "rabbit", "raccoon", "squirrel"}, 10},
      {"domainnet", {"clipart", "infograph", "painting", "quickdraw", "real", "sketch"}, {}, 345},
  };
  return k;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool image_extension(const fs::path& p) {
  const std::string e = lower(p.extension().string());
  return e == ".jpg" || e == ".jpeg" || e == ".png";
}

bool hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

std::vector<fs::path> sorted_dirs(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !hidden(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());  // byte order: deterministic for any file name
  return out;
}

std::string list(const std::vector<std::string>& v, size_t limit = 10) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < limit; ++i) out += (i ? ", " : "") + v[i];
  if (v.size() > limit) out += concat(", ... (", v.size(), " in all)");
  return out;
}

struct Enumerated {
  std::vector<Item> items;
  std::vector<std::string> domains, classes, split_names;
  std::vector<std::string> ignored;
};

Enumerated enumerate_folders(const ImportOptions& o) {
  Enumerated e;
  const fs::path root(o.source);
  std::map<std::string, std::vector<std::string>> classes_of;  // domain -> its classes
  std::set<std::string> all_classes;
  for (const auto& d : sorted_dirs(root)) {
    const std::string dn = d.filename().string();
    e.domains.push_back(dn);
    for (const auto& c : sorted_dirs(d)) {
      classes_of[dn].push_back(c.filename().string());
      all_classes.insert(c.filename().string());
    }
    for (const auto& f : fs::directory_iterator(d))
      if (f.is_regular_file() && !hidden(f.path()))
        e.ignored.push_back(concat(fs::relative(f.path(), root).string(), " (a file directly in a domain folder)"));
  }
  if (e.domains.empty())
    throw DataError(concat(o.source, ": no domain folders; expected DomainBed's layout ROOT/<domain>/<class>/<image>"));
  e.classes.assign(all_classes.begin(), all_classes.end());
  std::vector<std::string> lacking;
  for (const auto& dn : e.domains) {
    std::vector<std::string> missing;
    for (const auto& c : e.classes)
      if (std::find(classes_of[dn].begin(), classes_of[dn].end(), c) == classes_of[dn].end()) missing.push_back(c);
    if (classes_of[dn].empty()) throw DataError(concat(o.source, ": domain folder '", dn, "' has no class folders"));
    if (!missing.empty()) lacking.push_back(concat("'", dn, "' lacks ", list(missing, 5)));
  }
  if (!lacking.empty() && !o.allow_missing_classes)
    throw DataError(concat(o.source, ": the domains have different class folders (", list(lacking, 6),
                           "); --allow-missing-classes uses the union of the class names"));
  for (size_t di = 0; di < e.domains.size(); ++di) {
    const fs::path d = root / e.domains[di];
    for (const auto& cn : classes_of[e.domains[di]]) {
      const int64_t label = std::find(e.classes.begin(), e.classes.end(), cn) - e.classes.begin();
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(d / cn, fs::directory_options::follow_directory_symlink);
           it != fs::recursive_directory_iterator(); ++it) {
        if (hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (!it->is_regular_file()) continue;
        if (image_extension(it->path())) files.push_back(it->path());
        else e.ignored.push_back(fs::relative(it->path(), root).string());
      }
      if (files.empty()) {
        if (!o.skip_bad)
          throw DataError(concat(o.source, ": class folder '", e.domains[di], "/", cn,
                                 "' has no .jpg/.jpeg/.png images (--skip-bad imports the rest)"));
        e.ignored.push_back(concat(e.domains[di], "/", cn, "/ (an empty class folder)"));
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files)
        e.items.push_back(Item{f.string(), fs::relative(f, root).string(), static_cast<int64_t>(di), label, -1,
                               static_cast<int64_t>(fs::file_size(f))});
    }
  }
  return e;
}

Enumerated enumerate_manifest(const ImportOptions& o) {
  Enumerated e;
  std::ifstream in(o.source, std::ios::binary);
  if (!in) throw DataError(concat(o.source, ": cannot open"));
  std::vector<std::string> header;
  if (!csv_read_row(in, header)) throw DataError(concat(o.source, ": empty manifest"));
  if (!header.empty() && header[0].rfind("\xEF\xBB\xBF", 0) == 0) header[0] = header[0].substr(3);  // a BOM
  auto column = [&](const std::string& name, bool required) -> int64_t {
    for (size_t i = 0; i < header.size(); ++i)
      if (lower(header[i]) == name) return static_cast<int64_t>(i);
    if (required)
      throw DataError(concat(o.source, ": the header has no '", name, "' column (it has: ", list(header, 20),
                             "); a manifest needs path, label, domain and may have split"));
    return -1;
  };
  const int64_t cp = column("path", true), cl = column("label", true), cd = column("domain", true), cs = column("split", false);
  const fs::path base = o.root.empty() ? fs::path(o.source).parent_path() : fs::path(o.root);
  struct Row {
    std::string path, label, domain, split;
    int64_t line;
  };
  std::vector<Row> rows;
  std::vector<std::string> fields;
  for (int64_t line = 2; csv_read_row(in, fields); ++line) {
    if (fields.size() == 1 && fields[0].empty()) continue;  // a blank line
    if (fields.size() != header.size())
      throw DataError(concat(o.source, ":", line, ": ", fields.size(), " fields, the header has ", header.size()));
    Row r{fields[static_cast<size_t>(cp)], fields[static_cast<size_t>(cl)], fields[static_cast<size_t>(cd)],
          cs >= 0 ? fields[static_cast<size_t>(cs)] : "", line};
    if (r.path.empty() || r.label.empty() || r.domain.empty())
      throw DataError(concat(o.source, ":", line, ": empty path, label or domain"));
    rows.push_back(std::move(r));
  }
  if (rows.empty()) throw DataError(concat(o.source, ": the manifest lists no images"));
  // Labels: integers keep their values (classes 0..max), names are sorted like class folders.
  bool numeric = true;
  for (const auto& r : rows) numeric = numeric && r.label.find_first_not_of("0123456789") == std::string::npos && r.label.size() < 10;
  std::set<std::string> labels, domains, splits;
  int64_t max_label = -1;
  for (const auto& r : rows) {
    labels.insert(r.label), domains.insert(r.domain);
    if (!r.split.empty()) splits.insert(r.split);
    if (numeric) max_label = std::max<int64_t>(max_label, std::stoll(r.label));
  }
  if (numeric)
    for (int64_t i = 0; i <= max_label; ++i) e.classes.push_back(std::to_string(i));
  else
    e.classes.assign(labels.begin(), labels.end());
  e.domains.assign(domains.begin(), domains.end());
  e.split_names.assign(splits.begin(), splits.end());
  if (cs >= 0)
    for (const auto& r : rows)
      if (r.split.empty()) throw DataError(concat(o.source, ":", r.line, ": empty split (every row needs one when the column exists)"));
  for (const auto& r : rows) {
    const fs::path p = fs::path(r.path).is_absolute() ? fs::path(r.path) : base / r.path;
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (ec) {
      if (!o.skip_bad) throw DataError(concat(o.source, ":", r.line, ": ", p.string(), ": ", ec.message()));
      e.ignored.push_back(concat(r.path, " (", ec.message(), ")"));
      continue;
    }
    Item it;
    it.path = p.string();
    it.display = r.path;
    it.domain = std::find(e.domains.begin(), e.domains.end(), r.domain) - e.domains.begin();
    it.label = numeric ? std::stoll(r.label) : std::find(e.classes.begin(), e.classes.end(), r.label) - e.classes.begin();
    it.split = r.split.empty() ? -1 : std::find(e.split_names.begin(), e.split_names.end(), r.split) - e.split_names.begin();
    it.size = static_cast<int64_t>(size);
    e.items.push_back(std::move(it));
  }
  return e;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(concat(path, ": cannot open"));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs fn(i) for i in [0, n) on `threads` threads; the first exception is rethrown.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn, const std::function<void(int64_t)>& tick) {
  std::atomic<int64_t> next{0}, done{0};
  std::exception_ptr error;
  std::mutex m;
  auto work = [&] {
    for (int64_t i; (i = next++) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
        next = n;
      }
      ++done;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  std::thread ticker([&] {
    while (done < n && !error) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      tick(done);
    }
  });
  work();
  for (auto& t : pool) t.join();
  ticker.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

std::vector<std::string> known_image_datasets() {
  std::vector<std::string> out;
  for (const auto& k : known()) out.push_back(k.name);
  return out;
}

ImportReport import_images(const ImportOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.out.empty()) throw ConfigError("--out", "name the HDF5 file to write");
  if ((o.decode_h > 0) != (o.decode_w > 0) || o.decode_h < 0 || o.decode_w < 0 || o.decode_h > 4096 || o.decode_w > 4096)
    throw ConfigError("--decode", "give HxW, each in 1..4096 (e.g. 224x224)");
  std::error_code ec;
  if (!fs::exists(o.source, ec)) throw DataError(concat(o.source, ": does not exist"));
  const bool manifest = fs::is_regular_file(o.source, ec);
  Enumerated e = manifest ? enumerate_manifest(o) : enumerate_folders(o);
  ImportReport report;
  report.domains = e.domains, report.classes = e.classes, report.ignored = e.ignored;

  // A known layout: named (--name) or recognised by its domain folders; its names checked.
  const KnownDataset* ds = nullptr;
  for (const auto& k : known())
    if (k.name == o.name || (o.name.empty() && k.domains == e.domains)) ds = &k;
  if (!o.name.empty() && !ds)
    throw ConfigError("--name", concat("'", o.name, "' is not one of: ", list(known_image_datasets())));
  if (ds) {
    report.dataset = ds->name;
    if (e.domains != ds->domains)
      throw DataError(concat(o.source, ": ", ds->name, " has domains ", list(ds->domains), "; found ", list(e.domains)));
    if (!ds->classes.empty() && e.classes != ds->classes)
      throw DataError(concat(o.source, ": ", ds->name, " has classes ", list(ds->classes), "; found ", list(e.classes)));
    if (e.classes.size() != ds->class_count)
      throw DataError(concat(o.source, ": ", ds->name, " has ", ds->class_count, " classes; found ", e.classes.size()));
  }
  if (e.items.empty()) throw DataError(concat(o.source, ": no .jpg/.jpeg/.png images found"));

  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const bool tty = o.progress && isatty(2);
  auto progress = [&](const char* what, int64_t done, int64_t total) {
    if (!o.progress) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "%s%s: %lld/%lld images, %.0f images/s%s", tty ? "\r" : "", what, static_cast<long long>(done),
                 static_cast<long long>(total), s > 0 ? static_cast<double>(done) / s : 0.0, tty ? "" : "\n");
  };

  // Pass 1: every image read and decoded (in parallel): unreadable ones fail or are skipped.
  const int64_t n_all = static_cast<int64_t>(e.items.size());
  std::vector<std::string> bad(static_cast<size_t>(n_all));
  std::vector<std::string> kinds(static_cast<size_t>(n_all));
  int64_t last_tick = -1;
  parallel_for(
      n_all, threads,
      [&](int64_t i) {
        const Item& it = e.items[static_cast<size_t>(i)];
        try {
          const std::string bytes = read_file(it.path);
          const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
          const ImageInfo info = probe_image(data, bytes.size(), it.display);
          decode_image(data, bytes.size(), it.display);
          if (info.color != "rgb" || info.bit_depth != 8)
            kinds[static_cast<size_t>(i)] = concat(info.bit_depth == 16 ? "16-bit " : "", info.color);
        } catch (const DataError& err) {
          if (!o.skip_bad) throw DataError(concat(o.source, ": ", err.what(), " (--skip-bad skips unreadable images)"));
          bad[static_cast<size_t>(i)] = err.what();
        }
      },
      [&](int64_t done) {
        if (tty || done / std::max<int64_t>(1, n_all / 10) != last_tick) progress("checking", done, n_all);
        last_tick = done / std::max<int64_t>(1, n_all / 10);
      });
  if (o.progress && tty) std::fprintf(stderr, "\n");
  std::vector<Item> items;
  std::map<std::string, int64_t> kind_counts;
  for (int64_t i = 0; i < n_all; ++i) {
    if (!bad[static_cast<size_t>(i)].empty()) report.skipped.push_back(bad[static_cast<size_t>(i)]);
    else items.push_back(e.items[static_cast<size_t>(i)]);
    if (!kinds[static_cast<size_t>(i)].empty() && bad[static_cast<size_t>(i)].empty()) ++kind_counts[kinds[static_cast<size_t>(i)]];
  }
  for (const auto& [kind, count] : kind_counts)
    report.notes.push_back(concat(count, " ", kind, " images (converted to 8-bit RGB when read)"));
  if (items.empty()) throw DataError(concat(o.source, ": every image was unreadable"));
  const int64_t n = static_cast<int64_t>(items.size());

  // Pass 2: written in order, a batch at a time (read in parallel, written sequentially), to a
  // temporary file renamed at the end: the output is the same whatever the thread count.
  const std::string tmp = o.out + ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    at::Tensor labels = at::empty({n}, at::kLong), domains = at::empty({n}, at::kLong), offsets = at::empty({n + 1}, at::kLong);
    std::string names;
    at::Tensor name_offsets = at::empty({n + 1}, at::kLong);
    int64_t total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const Item& it = items[static_cast<size_t>(i)];
      labels[i] = it.label, domains[i] = it.domain;
      offsets[i] = total;
      total += it.size;
      name_offsets[i] = static_cast<int64_t>(names.size());
      names += it.display;
    }
    offsets[n] = total;
    name_offsets[n] = static_cast<int64_t>(names.size());
    const bool decode = o.decode_h > 0;
    h5::Handle images = decode ? f.create_dataset("/images", at::kByte, {n, 3, o.decode_h, o.decode_w},
                                              std::max<int64_t>(1, (1 << 20) / (3 * o.decode_h * o.decode_w)), 4)
                           : f.create_dataset("/images_encoded", at::kByte, {total}, 1 << 20, 0);
    const int64_t batch = 256;
    for (int64_t start = 0; start < n; start += batch) {
      const int64_t count = std::min(batch, n - start);
      std::vector<std::string> bytes(static_cast<size_t>(count));
      std::vector<at::Tensor> pixels(static_cast<size_t>(count));
      parallel_for(
          count, threads,
          [&](int64_t j) {
            const Item& it = items[static_cast<size_t>(start + j)];
            bytes[static_cast<size_t>(j)] = read_file(it.path);
            if (static_cast<int64_t>(bytes[static_cast<size_t>(j)].size()) != it.size)
              throw DataError(concat(it.path, ": changed size while importing"));
            if (decode) {
              const std::string& b = bytes[static_cast<size_t>(j)];
              const at::Tensor hwc = decode_image(reinterpret_cast<const uint8_t*>(b.data()), b.size(), it.display,
                                                  o.decode_h, o.decode_w);
              pixels[static_cast<size_t>(j)] = aug::resize(hwc.permute({2, 0, 1}).contiguous(), o.decode_h, o.decode_w);
            }
          },
          [](int64_t) {});
      if (decode) {
        f.write_rows_from(images.id(), start, at::stack(pixels));
      } else {
        std::string joined;
        for (const auto& b : bytes) joined += b;
        at::Tensor t = at::empty({static_cast<int64_t>(joined.size())}, at::kByte);
        std::memcpy(t.data_ptr(), joined.data(), joined.size());
        f.write_rows_from(images.id(), offsets[start].item<int64_t>(), t);
      }
      for (const auto& b : bytes) report.bytes_read += static_cast<int64_t>(b.size());
      progress("writing", start + count, n);
    }
    images.reset();
    if (!decode) f.write("/image_offsets", offsets);
    f.write("/labels", labels);
    f.write("/domains", domains);
    at::Tensor name_bytes = at::empty({static_cast<int64_t>(names.size())}, at::kByte);
    std::memcpy(name_bytes.data_ptr(), names.data(), names.size());
    f.write("/image_paths", name_bytes, 1 << 20);
    f.write("/image_path_offsets", name_offsets);
    bool has_splits = !e.split_names.empty();
    if (has_splits) {
      at::Tensor splits = at::empty({n}, at::kByte);
      for (int64_t i = 0; i < n; ++i) splits[i] = items[static_cast<size_t>(i)].split;
      f.write("/splits", splits);
      f.set_attr("/", "split_names", e.split_names);
    }
    f.set_attr("/", "domain_names", e.domains);
    f.set_attr("/", "class_names", e.classes);
    f.set_attr("/", "num_classes", static_cast<int64_t>(e.classes.size()));
    f.set_attr("/", "dataset", ds ? ds->name : std::string("imported"));
    f.set_attr("/", "source", fs::absolute(o.source).string());
    f.set_attr("/", "seed", int64_t{0});
    f.close();
  }
  fs::rename(tmp, o.out);
  report.images = n;
  report.bytes_written = static_cast<int64_t>(fs::file_size(o.out));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace oodt
