package meshops.spark;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;

import org.apache.hadoop.conf.Configuration;
import java.util.EnumSet;

import org.apache.hadoop.fs.CreateFlag;
import org.apache.hadoop.fs.DelegateToFileSystem;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.util.Progressable;

/**
 * The local file system, except that {@code /Volumes/<catalog>/<schema>/<volume>/...} lives under
 * the folder in the Hadoop setting {@value #ROOT_KEY}: notebooks that read and write Unity Catalog
 * volume paths run unchanged on a laptop. Registered as {@code fs.file.impl}; it extends {@link
 * LocalFileSystem} because Hadoop and Spark cast {@code FileSystem.getLocal} to it. {@link Fs} is the
 * same for {@code FileContext} ({@code fs.AbstractFileSystem.file.impl}), which Spark's streaming
 * checkpoints and Delta's log store write through.
 *
 * <p>Files of a volume in a catalog the current thread must only read ({@link SharedInputs}) are
 * not created, appended to, truncated, renamed or deleted: Spark's writers fail with the shared
 * input message before they write anything.
 */
public class VolumesFileSystem extends LocalFileSystem {
  public static final String ROOT_KEY = "meshops.volumes.root";
  static final String PREFIX = "/Volumes";

  public VolumesFileSystem() {
    super(new Raw());
  }

  /**
   * Maps {@code /Volumes} paths to files under the root, and reports them back under {@code
   * /Volumes}: Spark matches listed files against the paths it asked for.
   */
  static final class Raw extends RawLocalFileSystem {
    private volatile File root;

    @Override
    public void initialize(URI uri, Configuration conf) throws IOException {
      super.initialize(uri, conf);
      String configured = conf.get(ROOT_KEY, "");
      root = configured.isEmpty() ? null : new File(configured).getAbsoluteFile();
    }

    private boolean isVolume(Path path) {
      if (root == null) {
        return false;
      }
      String local = super.pathToFile(path).getPath();
      return local.equals(PREFIX) || local.startsWith(PREFIX + "/");
    }

    /** Refuses a change under {@code /Volumes/<catalog>/} of a read-only catalog. */
    private void writable(Path path) {
      if (!isVolume(path)) {
        return;
      }
      String[] parts = super.pathToFile(path).getPath().split("/");
      // "", "Volumes", catalog, ...
      if (parts.length > 2) {
        SharedInputs.check(parts[2]);
      }
    }

    @Override
    public FSDataOutputStream create(
        Path path,
        boolean overwrite,
        int bufferSize,
        short replication,
        long blockSize,
        Progressable progress)
        throws IOException {
      writable(path);
      return super.create(path, overwrite, bufferSize, replication, blockSize, progress);
    }

    @Override
    public FSDataOutputStream create(
        Path path,
        FsPermission permission,
        boolean overwrite,
        int bufferSize,
        short replication,
        long blockSize,
        Progressable progress)
        throws IOException {
      writable(path);
      return super.create(
          path, permission, overwrite, bufferSize, replication, blockSize, progress);
    }

    @Override
    public FSDataOutputStream createNonRecursive(
        Path path,
        FsPermission permission,
        EnumSet<CreateFlag> flags,
        int bufferSize,
        short replication,
        long blockSize,
        Progressable progress)
        throws IOException {
      writable(path);
      return super.createNonRecursive(
          path, permission, flags, bufferSize, replication, blockSize, progress);
    }

    @Override
    public FSDataOutputStream createNonRecursive(
        Path path,
        FsPermission permission,
        boolean overwrite,
        int bufferSize,
        short replication,
        long blockSize,
        Progressable progress)
        throws IOException {
      writable(path);
      return super.createNonRecursive(
          path, permission, overwrite, bufferSize, replication, blockSize, progress);
    }

    @Override
    public FSDataOutputStream append(Path path, int bufferSize, Progressable progress)
        throws IOException {
      writable(path);
      return super.append(path, bufferSize, progress);
    }

    @Override
    public boolean truncate(Path path, long length) throws IOException {
      writable(path);
      return super.truncate(path, length);
    }

    @Override
    public boolean mkdirs(Path path) throws IOException {
      writable(path);
      return super.mkdirs(path);
    }

    @Override
    public boolean mkdirs(Path path, FsPermission permission) throws IOException {
      writable(path);
      return super.mkdirs(path, permission);
    }

    @Override
    public boolean delete(Path path, boolean recursive) throws IOException {
      writable(path);
      return super.delete(path, recursive);
    }

    @Override
    public boolean rename(Path source, Path target) throws IOException {
      writable(source);
      writable(target);
      return super.rename(source, target);
    }

    @Override
    public File pathToFile(Path path) {
      File file = super.pathToFile(path);
      File base = root;
      if (base == null) {
        return file;
      }
      String local = file.getPath();
      if (local.equals(PREFIX)) {
        return base;
      }
      if (local.startsWith(PREFIX + "/")) {
        return new File(base, local.substring(PREFIX.length() + 1));
      }
      return file;
    }

    /** The status of a file under the root, with its {@code /Volumes} path. */
    private FileStatus underVolumes(FileStatus status) {
      String real = status.getPath().toUri().getPath();
      String base = root.getPath();
      String virtual;
      if (real.equals(base)) {
        virtual = PREFIX;
      } else if (real.startsWith(base + "/")) {
        virtual = PREFIX + real.substring(base.length());
      } else {
        return status;
      }
      // a plain status: the local one would look its permissions up by the (virtual) path
      return new FileStatus(
          status.getLen(),
          status.isDirectory(),
          status.getReplication(),
          status.getBlockSize(),
          status.getModificationTime(),
          status.getAccessTime(),
          null,
          null,
          null,
          makeQualified(new Path(virtual)));
    }

    @Override
    public FileStatus getFileStatus(Path path) throws IOException {
      FileStatus status = super.getFileStatus(path);
      return isVolume(path) ? underVolumes(status) : status;
    }

    /**
     * Hadoop without its native library starts a {@code chmod} process for every file it writes
     * with a permission (each data file and Delta log file, and its temporary twin): java.nio sets
     * the same bits in this process. A sticky bit, which java.nio cannot set, is left to Hadoop.
     */
    @Override
    public void setPermission(Path path, FsPermission permission) throws IOException {
      if (permission.getStickyBit()) {
        super.setPermission(path, permission);
        return;
      }
      String bits =
          permission.getUserAction().SYMBOL
              + permission.getGroupAction().SYMBOL
              + permission.getOtherAction().SYMBOL;
      Files.setPosixFilePermissions(
          pathToFile(path).toPath(), PosixFilePermissions.fromString(bits));
    }

    /**
     * Hadoop's local status of a link starts a {@code readlink} process per call, and Delta's log
     * store asks twice for every file it commits (FileContext's rename): a path that is not a
     * symbolic link (told by java.nio, without a process) gets its plain status, as Hadoop then
     * returns too.
     */
    @Override
    public FileStatus getFileLinkStatus(Path path) throws IOException {
      FileStatus status =
          Files.isSymbolicLink(pathToFile(path).toPath())
              ? super.getFileLinkStatus(path)
              : super.getFileStatus(path);
      return isVolume(path) ? underVolumes(status) : status;
    }

    @Override
    public FileStatus[] listStatus(Path path) throws IOException {
      FileStatus[] statuses = super.listStatus(path);
      if (isVolume(path)) {
        for (int i = 0; i < statuses.length; i++) {
          statuses[i] = underVolumes(statuses[i]);
        }
      }
      return statuses;
    }
  }

  /**
   * {@code file:} for {@code FileContext} users: without it, a checkpoint or Delta log under {@code
   * /Volumes/...} would be written on this machine's root.
   */
  public static final class Fs extends DelegateToFileSystem {
    public Fs(URI uri, Configuration conf) throws IOException, URISyntaxException {
      super(uri, new VolumesFileSystem(), conf, "file", false);
    }
  }
}
