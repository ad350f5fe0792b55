package meshops.spark;

import java.io.File;
import java.io.IOException;
import java.net.URI;

import org.apache.hadoop.conf.Configuration;
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

  /** Maps paths where every local operation turns a {@link Path} into a {@link File}. */
  static final class Raw extends RawLocalFileSystem {
    private volatile File root;

    @Override
    public void initialize(URI uri, Configuration conf) throws IOException {
      super.initialize(uri, conf);
      String configured = conf.get(ROOT_KEY, "");
      root = configured.isEmpty() ? null : new File(configured);
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
  }
}
