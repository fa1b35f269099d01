#include "releases/unpack_archive.hpp"

#include "releases/fs_util.hpp"
#include "releases/safe_paths.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>

#include <memory>
#include <sys/stat.h>

namespace releasectl::releases {

namespace {

struct ReaderDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};
struct WriterDeleter {
    void operator()(struct archive* a) const { archive_write_free(a); }
};
using Reader = std::unique_ptr<struct archive, ReaderDeleter>;
using Writer = std::unique_ptr<struct archive, WriterDeleter>;

std::string archive_message(struct archive* a) {
    const char* text = archive_error_string(a);
    return text ? text : "unknown error";
}

// A hard link may only name a regular file already unpacked, reached without
// passing through a symlink (otherwise it could pin a file outside the release).
bool is_plain_file_inside(const fs::path& root, const fs::path& rel) {
    fs::path path = root;
    const auto end = rel.end();
    for (auto it = rel.begin(); it != end; ++it) {
        path /= *it;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0 || S_ISLNK(st.st_mode))
            return false;
        if (std::next(it) == end)
            return S_ISREG(st.st_mode);
        if (!S_ISDIR(st.st_mode))
            return false;
    }
    return false;
}

const char* file_type_name(mode_t type) {
    switch (type) {
    case AE_IFCHR: return "character device";
    case AE_IFBLK: return "block device";
    case AE_IFIFO: return "FIFO";
    case AE_IFSOCK: return "socket";
    default: return "special file";
    }
}

} // namespace

Status unpack_archive(const fs::path& archive, const fs::path& destination) {
    std::error_code ec;
    // Canonical, so that libarchive's symlink checks see no symlink in our own prefix.
    const fs::path root = fs::canonical(destination, ec);
    if (ec)
        return Status::failure(fmt::format("cannot resolve {}: {}", destination.string(), ec.message()));
    const std::string shown = archive.string();
    auto fail = [&](std::string message) { return Status::failure(fmt::format("archive {}: {}", shown, message)); };

    Reader reader(archive_read_new());
    archive_read_support_filter_all(reader.get());
    archive_read_support_format_tar(reader.get());
    if (archive_read_open_filename(reader.get(), archive.c_str(), 64 * 1024) != ARCHIVE_OK)
        return fail(fmt::format("truncated or corrupt, or not a tar archive: {}", archive_message(reader.get())));

    Writer writer(archive_write_disk_new());
    archive_write_disk_set_options(writer.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                     ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                     ARCHIVE_EXTRACT_SECURE_NODOTDOT);

    std::size_t entries = 0;
    for (;;) {
        struct archive_entry* entry = nullptr;
        int rc = archive_read_next_header(reader.get(), &entry);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc < ARCHIVE_WARN)
            return fail(fmt::format("truncated or corrupt: {}", archive_message(reader.get())));

        const char* raw_name = archive_entry_pathname(entry);
        std::string why;
        auto rel = clean_relative_path(raw_name ? raw_name : "", &why);
        if (!rel)
            return fail(fmt::format("refusing entry '{}': {}", raw_name ? raw_name : "", why));
        const mode_t type = archive_entry_filetype(entry);
        const char* hardlink = archive_entry_hardlink(entry);
        if (rel->empty()) { // "./": the release directory itself
            if (type != AE_IFDIR)
                return fail(fmt::format("refusing entry '{}': not a directory", raw_name));
            continue;
        }
        if (hardlink) {
            auto link_rel = clean_relative_path(hardlink, &why);
            if (!link_rel || link_rel->empty())
                return fail(fmt::format("refusing hard link '{}' -> '{}': {}", rel->string(), hardlink,
                                        link_rel ? "target is the release itself" : why));
            if (!is_plain_file_inside(root, *link_rel))
                return fail(fmt::format("refusing hard link '{}' -> '{}': target is not a regular file unpacked "
                                        "earlier from this archive",
                                        rel->string(), hardlink));
            archive_entry_set_hardlink(entry, (root / *link_rel).c_str());
        } else if (type == AE_IFLNK) {
            const char* target = archive_entry_symlink(entry);
            if (!target || !symlink_target_stays_inside(*rel, target))
                return fail(fmt::format("refusing symlink '{}' -> '{}': it points outside the release",
                                        rel->string(), target ? target : ""));
        } else if (type == AE_IFDIR) {
            archive_entry_set_perm(entry, (archive_entry_perm(entry) & 07777) | S_IRWXU);
        } else if (type == AE_IFREG) {
            archive_entry_set_perm(entry, archive_entry_perm(entry) & 0777);
        } else {
            return fail(fmt::format("refusing entry '{}': a {} has no place in a release", rel->string(),
                                    file_type_name(type)));
        }
        archive_entry_set_pathname(entry, (root / *rel).c_str());

        if (archive_write_header(writer.get(), entry) < ARCHIVE_WARN)
            return fail(fmt::format("cannot unpack '{}': {}", rel->string(), archive_message(writer.get())));
        if (archive_entry_size(entry) > 0 && !hardlink) {
            const void* block = nullptr;
            size_t size = 0;
            la_int64_t offset = 0;
            for (;;) {
                int data_rc = archive_read_data_block(reader.get(), &block, &size, &offset);
                if (data_rc == ARCHIVE_EOF)
                    break;
                if (data_rc < ARCHIVE_WARN)
                    return fail(fmt::format("truncated or corrupt while reading '{}': {}", rel->string(),
                                            archive_message(reader.get())));
                if (archive_write_data_block(writer.get(), block, size, offset) < ARCHIVE_WARN)
                    return fail(fmt::format("cannot write '{}': {}", rel->string(), archive_message(writer.get())));
            }
        }
        if (archive_write_finish_entry(writer.get()) < ARCHIVE_WARN)
            return fail(fmt::format("cannot finish '{}': {}", rel->string(), archive_message(writer.get())));
        ++entries;
    }
    if (archive_write_close(writer.get()) < ARCHIVE_WARN)
        return fail(fmt::format("cannot finish unpacking: {}", archive_message(writer.get())));
    if (entries == 0)
        return fail("contains no files");
    if (auto status = check_tree_symlinks(root); !status)
        return fail(status.error);
    return Status::success();
}

} // namespace releasectl::releases
