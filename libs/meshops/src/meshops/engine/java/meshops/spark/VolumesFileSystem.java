package meshops.spark;

import java.io.File;
import java.io.IOException;
import java.net.URI;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;

/**
 * The local file system, except that {@code /Volumes/<catalog>/<schema>/<volume>/...} lives under
 * the folder in the Hadoop setting {@value #ROOT_KEY}: notebooks that read and write Unity Catalog
 * volume paths run unchanged on a laptop. Registered as {@code fs.file.impl}; it extends {@link
 * LocalFileSystem} because Hadoop and Spark cast {@code FileSystem.getLocal} to it.
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

    @Override
    public FileStatus getFileLinkStatus(Path path) throws IOException {
      FileStatus status = super.getFileLinkStatus(path);
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
}
