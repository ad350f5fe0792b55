package meshops.spark;

import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.catalyst.analysis.NamespaceAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.NoSuchNamespaceException;
import org.apache.spark.sql.catalyst.analysis.NoSuchTableException;
import org.apache.spark.sql.catalyst.analysis.NoSuchViewException;
import org.apache.spark.sql.catalyst.analysis.NonEmptyNamespaceException;
import org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.ViewAlreadyExistsException;
import org.apache.spark.sql.catalyst.catalog.CatalogTableType;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.connector.catalog.CatalogPlugin;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.NamespaceChange;
import org.apache.spark.sql.connector.catalog.Relation;
import org.apache.spark.sql.connector.catalog.RelationCatalog;
import org.apache.spark.sql.connector.catalog.StagedTable;
import org.apache.spark.sql.connector.catalog.StagingTableCatalog;
import org.apache.spark.sql.connector.catalog.SupportsNamespaces;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCatalog;
import org.apache.spark.sql.connector.catalog.TableChange;
import org.apache.spark.sql.connector.catalog.TableInfo;
import org.apache.spark.sql.connector.catalog.TableWritePrivilege;
import org.apache.spark.sql.connector.catalog.V1Table;
import org.apache.spark.sql.connector.catalog.View;
import org.apache.spark.sql.connector.expressions.ClusterByTransform;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * A Unity-Catalog-like catalog for local Spark, registered once per catalog name.
 *
 * <p>Schema {@code s} of catalog {@code c} is database {@code c__s} of the session catalog (the
 * Hive metastore): names get three levels, catalogs keep their schemas apart, and the one
 * persistent metastore still stores everything. Every call is delegated to the session catalog
 * (Delta Lake's {@code DeltaCatalog}) with the mapped name.
 *
 * <p>Delta tables are handed out as the session catalog returns them, so Delta's own rules see
 * them (MERGE, UPDATE, DELETE, time travel, history, OPTIMIZE); CREATE/REPLACE ... AS SELECT
 * and overwriting saves are staged through Delta, so a replace is one atomic commit that keeps
 * the table's history, as on Databricks. Other formats (parquet, csv): reads get the session
 * catalog's {@link V1Table} (as a {@link ReadableTable}); writers get a {@link MappedTable} that
 * inserts into the mapped table, because Spark's writers fall back to two-level names (and so to
 * the wrong database) when they are handed a {@code V1Table}. Views are metastore views in the
 * mapped database, made by Spark's own CREATE VIEW (see {@link Views}).
 *
 * <p>A catalog the current thread must only read (a shared input of a flow task, see {@link
 * SharedInputs}) refuses every write entry point below: creating, replacing, loading for a write,
 * altering, renaming and dropping tables, views and schemas.
 */
public final class UnityCatalog implements RelationCatalog, StagingTableCatalog, SupportsNamespaces {
  /** Between catalog and schema in a metastore database name; never inside a catalog name. */
  public static final String SEPARATOR = "__";

  private String name;

  @Override
  public void initialize(String name, CaseInsensitiveStringMap options) {
    if (name.contains(SEPARATOR) || !name.equals(name.toLowerCase(Locale.ROOT))) {
      throw new IllegalArgumentException(
          "catalog name '" + name + "' must be lower case without '" + SEPARATOR + "'");
    }
    this.name = name;
  }

  @Override
  public String name() {
    return name;
  }

  /** Like Unity Catalog, {@code USE c} lands in schema {@code default}. */
  @Override
  public String[] defaultNamespace() {
    return new String[] {"default"};
  }

  // ---- mapping ---------------------------------------------------------------------------

  private static CatalogPlugin sessionCatalog() {
    return SparkSession.active().sessionState().catalogManager().v2SessionCatalog();
  }

  private static TableCatalog tables() {
    return (TableCatalog) sessionCatalog();
  }

  private static SupportsNamespaces namespaces() {
    return (SupportsNamespaces) sessionCatalog();
  }

  /** Metastore database holding schema {@code schema} of this catalog. */
  String database(String schema) {
    return name + SEPARATOR + schema.toLowerCase(Locale.ROOT);
  }

  private String[] userNamespace(String[] namespace) {
    String[] parts = new String[namespace.length + 1];
    parts[0] = name;
    System.arraycopy(namespace, 0, parts, 1, namespace.length);
    return parts;
  }

  private Identifier userIdentifier(Identifier ident) {
    return Identifier.of(userNamespace(ident.namespace()), ident.name());
  }

  /** {@code catalog.schema.table} as Unity Catalog spells it (lower case). */
  String fullName(Identifier ident) {
    return (name + "." + String.join(".", ident.namespace()) + "." + ident.name())
        .toLowerCase(Locale.ROOT);
  }

  private String[] mapNamespace(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length != 1) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
    return new String[] {database(namespace[0])};
  }

  private Identifier mapTable(Identifier ident) throws NoSuchTableException {
    if (ident.namespace().length != 1) {
      throw new NoSuchTableException(userIdentifier(ident));
    }
    return Identifier.of(new String[] {database(ident.namespace()[0])}, ident.name());
  }

  private Identifier mapNewTable(Identifier ident) throws NoSuchNamespaceException {
    return Identifier.of(mapNamespace(ident.namespace()), ident.name());
  }

  // ---- tables ----------------------------------------------------------------------------

  @Override
  public Identifier[] listTables(String[] namespace) throws NoSuchNamespaceException {
    String[] mapped = mapNamespace(namespace);
    if (!namespaces().namespaceExists(mapped)) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
    Set<String> viewNames = new HashSet<>(views().list(mapped[0]));
    List<Identifier> found = new ArrayList<>();
    for (Identifier ident : tables().listTables(mapped)) {
      // the session catalog lists temporary views (no schema) and views (listViews) too
      if (ident.namespace().length == 1
          && ident.namespace()[0].equals(mapped[0])
          && !viewNames.contains(ident.name())) {
        String schema = namespace[0].toLowerCase(Locale.ROOT);
        found.add(Identifier.of(new String[] {schema}, ident.name()));
      }
    }
    return found.toArray(new Identifier[0]);
  }

  /** The table, or for a metastore view the {@link View} Spark expands: what a read looks up. */
  @Override
  public Relation loadRelation(Identifier ident) throws NoSuchTableException {
    Relation relation = relation(ident);
    TaskReads.record(SparkSession.active().sparkContext(), fullName(ident));
    return relation;
  }

  /** {@link #loadRelation} without recording a read (writes and existence checks). */
  private Relation relation(Identifier ident) throws NoSuchTableException {
    Identifier mapped = mapTable(ident);
    Table table;
    try {
      table = tables().loadTable(mapped);
    } catch (NoSuchTableException e) {
      throw new NoSuchTableException(userIdentifier(ident));
    }
    if (table instanceof V1Table v1 && v1.catalogTable().tableType() == CatalogTableType.VIEW()) {
      View view = views().load(mapped);
      if (view == null) {
        throw new NoSuchTableException(userIdentifier(ident));
      }
      return view;
    }
    if (table instanceof V1Table v1) {
      return new ReadableTable(fullName(ident), v1.catalogTable());
    }
    return table;
  }

  @Override
  public Table loadTable(Identifier ident) throws NoSuchTableException {
    Table table = table(ident);
    TaskReads.record(SparkSession.active().sparkContext(), fullName(ident));
    return table;
  }

  private Table table(Identifier ident) throws NoSuchTableException {
    if (relation(ident) instanceof Table table) {
      return table;
    }
    throw new NoSuchTableException(userIdentifier(ident));
  }

  /** Whether the table exists: a lookup, not a read. */
  @Override
  public boolean tableExists(Identifier ident) {
    try {
      table(ident);
      return true;
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  /** What writers load: Delta tables as they are, others a table that writes to the mapped one. */
  @Override
  public Table loadTable(Identifier ident, Set<TableWritePrivilege> privileges)
      throws NoSuchTableException {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    Table table = table(ident);
    TaskWrites.record(SparkSession.active().sparkContext(), fullName(ident));
    if (!(table instanceof V1Table)) {
      return table;
    }
    // saveAsTable and INSERT OVERWRITE ask for INSERT and DELETE; only row-level commands
    // (MERGE, UPDATE, DELETE FROM) ask for UPDATE or for DELETE alone
    if (privileges.contains(TableWritePrivilege.UPDATE)
        || (privileges.contains(TableWritePrivilege.DELETE)
            && !privileges.contains(TableWritePrivilege.INSERT))) {
      throw new IllegalArgumentException(
          "MERGE INTO, UPDATE and DELETE FROM need a Delta table, and "
              + fullName(ident)
              + " is "
              + ((V1Table) table)
                  .catalogTable()
                  .provider()
                  .getOrElse(() -> "not Delta")
                  .toLowerCase(Locale.ROOT)
              + ": recreate it as Delta (the default format) or overwrite it");
    }
    return writable(ident, table, null);
  }

  @Override
  public Table loadTable(Identifier ident, String version) throws NoSuchTableException {
    Table table = tables().loadTable(mapTable(ident), version);
    TaskReads.record(SparkSession.active().sparkContext(), fullName(ident));
    return table;
  }

  @Override
  public Table loadTable(Identifier ident, long timestamp) throws NoSuchTableException {
    Table table = tables().loadTable(mapTable(ident), timestamp);
    TaskReads.record(SparkSession.active().sparkContext(), fullName(ident));
    return table;
  }

  private Table writable(Identifier ident, Table table, Column[] columns) {
    if (table instanceof V1Table v1 && v1.catalogTable().tableType() != CatalogTableType.VIEW()) {
      return new MappedTable(fullName(ident), v1.catalogTable(), columns);
    }
    return table;
  }

  @Override
  public void invalidateTable(Identifier ident) {
    try {
      tables().invalidateTable(mapTable(ident));
    } catch (NoSuchTableException e) {
      // a name with a nested namespace cannot be cached
    }
  }

  @Override
  public Table createTable(Identifier ident, TableInfo info)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    Identifier mapped = mapNewTable(ident);
    if (!namespaces().namespaceExists(mapped.namespace())) {
      throw new NoSuchNamespaceException(userNamespace(ident.namespace()));
    }
    TableInfo withProvider = withProvider(info);
    try {
      tables().createTable(mapped, withProvider);
    } catch (TableAlreadyExistsException e) {
      throw new TableAlreadyExistsException(userIdentifier(ident));
    }
    TaskWrites.record(SparkSession.active().sparkContext(), fullName(ident));
    try {
      return writable(ident, tables().loadTable(mapped), info.columns());
    } catch (NoSuchTableException e) {
      throw new IllegalStateException("table " + fullName(ident) + " vanished after creation", e);
    }
  }

  /**
   * The table's definition with its format made explicit: the session's default (Delta) when
   * none is given, never a Hive-format table (a non-session catalog cannot read the partitions
   * Hive tables keep in the metastore).
   */
  private static TableInfo withProvider(TableInfo info) {
    Map<String, String> props = new HashMap<>(info.properties());
    props.putIfAbsent(
        TableCatalog.PROP_PROVIDER,
        SparkSession.active().sessionState().conf().defaultDataSourceName());
    return new TableInfo.Builder()
        .withColumns(info.columns())
        .withPartitions(clusteringAsDelta(info.partitions()))
        .withConstraints(info.constraints())
        .withProperties(props)
        .build();
  }

  /**
   * Clustering columns as Delta recognises them. Spark's writers ({@code DataFrameWriter.clusterBy},
   * {@code writeTo(...).clusterBy}) hand a non-session catalog Spark's own {@link
   * ClusterByTransform}, which Delta 4.4 takes for an expression; Delta's SQL parser makes Delta's
   * own transform class, so that is what is passed on (found through Delta's class loader).
   */
  private static Transform[] clusteringAsDelta(Transform[] partitions) {
    Transform[] out = partitions.clone();
    for (int i = 0; i < out.length; i++) {
      if (out[i] instanceof ClusterByTransform spark) {
        out[i] = deltaClusterBy(spark);
      }
    }
    return out;
  }

  private static Transform deltaClusterBy(ClusterByTransform spark) {
    try {
      Class<?> module =
          Class.forName(
              "org.apache.spark.sql.delta.skipping.clustering.temp.ClusterByTransform$",
              true,
              sessionCatalog().getClass().getClassLoader());
      Object companion = module.getField("MODULE$").get(null);
      Method apply = module.getMethod("apply", scala.collection.immutable.Seq.class);
      return (Transform) apply.invoke(companion, spark.columnNames());
    } catch (ReflectiveOperationException | ClassCastException e) {
      return spark; // a Delta without its own transform takes Spark's
    }
  }

  private static boolean isDelta(TableInfo info) {
    return "delta".equalsIgnoreCase(info.properties().get(TableCatalog.PROP_PROVIDER));
  }

  private StagingTableCatalog staging() {
    return (StagingTableCatalog) sessionCatalog();
  }

  // ---- staged (atomic) create and replace --------------------------------------------------

  @Override
  public StagedTable stageCreate(Identifier ident, TableInfo info)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    TableInfo full = withProvider(info);
    Identifier mapped = mapNewTable(ident);
    if (!namespaces().namespaceExists(mapped.namespace())) {
      throw new NoSuchNamespaceException(userNamespace(ident.namespace()));
    }
    TaskWrites.record(SparkSession.active().sparkContext(), fullName(ident));
    if (isDelta(full) && sessionCatalog() instanceof StagingTableCatalog) {
      try {
        return staging().stageCreate(mapped, full);
      } catch (TableAlreadyExistsException e) {
        throw new TableAlreadyExistsException(userIdentifier(ident));
      }
    }
    return new CreatedTable(ident, createTable(ident, full));
  }

  @Override
  public StagedTable stageReplace(Identifier ident, TableInfo info)
      throws NoSuchNamespaceException, NoSuchTableException {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    TableInfo full = withProvider(info);
    Identifier mapped = mapTable(ident);
    TaskWrites.record(SparkSession.active().sparkContext(), fullName(ident));
    if (isDelta(full) && isDeltaTable(mapped) && sessionCatalog() instanceof StagingTableCatalog) {
      return staging().stageReplace(mapped, full);
    }
    if (!tables().tableExists(mapped)) {
      throw new NoSuchTableException(userIdentifier(ident));
    }
    return replaced(ident, full);
  }

  @Override
  public StagedTable stageCreateOrReplace(Identifier ident, TableInfo info)
      throws NoSuchNamespaceException {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    TableInfo full = withProvider(info);
    Identifier mapped = mapNewTable(ident);
    if (!namespaces().namespaceExists(mapped.namespace())) {
      throw new NoSuchNamespaceException(userNamespace(ident.namespace()));
    }
    TaskWrites.record(SparkSession.active().sparkContext(), fullName(ident));
    boolean exists = tables().tableExists(mapped);
    if (isDelta(full)
        && (!exists || isDeltaTable(mapped))
        && sessionCatalog() instanceof StagingTableCatalog) {
      return staging().stageCreateOrReplace(mapped, full);
    }
    return replaced(ident, full);
  }

  @Override
  @SuppressWarnings("deprecation")
  public StagedTable stageCreate(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    return stageCreate(ident, info(columns, partitions, properties));
  }

  @Override
  @SuppressWarnings("deprecation")
  public StagedTable stageReplace(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws NoSuchNamespaceException, NoSuchTableException {
    return stageReplace(ident, info(columns, partitions, properties));
  }

  @Override
  @SuppressWarnings("deprecation")
  public StagedTable stageCreateOrReplace(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws NoSuchNamespaceException {
    return stageCreateOrReplace(ident, info(columns, partitions, properties));
  }

  private static TableInfo info(
      Column[] columns, Transform[] partitions, Map<String, String> properties) {
    return new TableInfo.Builder()
        .withColumns(columns)
        .withPartitions(partitions)
        .withProperties(properties)
        .build();
  }

  private boolean isDeltaTable(Identifier mapped) {
    try {
      return !(tables().loadTable(mapped) instanceof V1Table);
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  /**
   * Replace without Delta (another format, or a change of format): drop, then create. Not atomic,
   * as for such tables in Spark's session catalog; the new table is dropped again on abort.
   */
  private StagedTable replaced(Identifier ident, TableInfo info) throws NoSuchNamespaceException {
    dropTable(ident);
    try {
      return new CreatedTable(ident, createTable(ident, info));
    } catch (TableAlreadyExistsException e) {
      throw new IllegalStateException("table " + fullName(ident) + " reappeared while replaced", e);
    }
  }

  /** A table already created, offered as staged: commit keeps it, abort drops it. */
  private final class CreatedTable implements StagedTable, SupportsWrite {
    private final Identifier ident;
    private final Table table;

    CreatedTable(Identifier ident, Table table) {
      this.ident = ident;
      this.table = table;
    }

    @Override
    public String name() {
      return table.name();
    }

    @Override
    public Column[] columns() {
      return table.columns();
    }

    @Override
    public Transform[] partitioning() {
      return table.partitioning();
    }

    @Override
    public Map<String, String> properties() {
      return table.properties();
    }

    @Override
    public Set<TableCapability> capabilities() {
      return table.capabilities();
    }

    @Override
    public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
      return ((SupportsWrite) table).newWriteBuilder(info);
    }

    @Override
    public void commitStagedChanges() {}

    @Override
    public void abortStagedChanges() {
      dropTable(ident);
    }
  }

  @Override
  @SuppressWarnings("deprecation")
  public Table createTable(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    return createTable(
        ident,
        new TableInfo.Builder()
            .withColumns(columns)
            .withPartitions(partitions)
            .withProperties(properties)
            .build());
  }

  @Override
  public Table alterTable(Identifier ident, TableChange... changes) throws NoSuchTableException {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    tables().alterTable(mapTable(ident), changes);
    return table(ident);
  }

  @Override
  public boolean dropTable(Identifier ident) {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    try {
      return tables().dropTable(mapTable(ident));
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  @Override
  public boolean purgeTable(Identifier ident) {
    SharedInputs.check(name);
    SharedInputs.checkTable(name, ident);
    try {
      return tables().purgeTable(mapTable(ident));
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  @Override
  public void renameTable(Identifier oldIdent, Identifier newIdent)
      throws NoSuchTableException, TableAlreadyExistsException {
    SharedInputs.check(name);
    Identifier mappedNew;
    try {
      mappedNew = renameTarget(oldIdent, newIdent);
    } catch (NoSuchNamespaceException e) {
      throw new NoSuchTableException(userIdentifier(newIdent));
    }
    tables().renameTable(mapTable(oldIdent), mappedNew);
  }

  /** The mapped new name of a rename: {@code t2}, {@code s.t2} or {@code c.s.t2}. */
  private Identifier renameTarget(Identifier oldIdent, Identifier newIdent)
      throws NoSuchNamespaceException {
    String[] target = newIdent.namespace();
    if (target.length == 0) {
      target = oldIdent.namespace();
    } else if (target.length == 2 && target[0].equals(name)) {
      target = new String[] {target[1]};
    }
    return mapNewTable(Identifier.of(target, newIdent.name()));
  }

  // ---- views -----------------------------------------------------------------------------

  private Views views() {
    return new Views(SparkSession.active());
  }

  @Override
  public Identifier[] listViews(String[] namespace) throws NoSuchNamespaceException {
    String[] mapped = mapNamespace(namespace);
    if (!namespaces().namespaceExists(mapped)) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
    List<Identifier> found = new ArrayList<>();
    for (String view : views().list(mapped[0])) {
      found.add(Identifier.of(new String[] {namespace[0].toLowerCase(Locale.ROOT)}, view));
    }
    return found.toArray(new Identifier[0]);
  }

  @Override
  public View createView(Identifier ident, View view)
      throws ViewAlreadyExistsException, NoSuchNamespaceException {
    SharedInputs.check(name);
    Identifier mapped = mapNewTable(ident);
    if (!namespaces().namespaceExists(mapped.namespace())) {
      throw new NoSuchNamespaceException(userNamespace(ident.namespace()));
    }
    if (tables().tableExists(mapped)) {
      throw new ViewAlreadyExistsException(userIdentifier(ident));
    }
    views().create(mapped, view, false);
    try {
      return loadView(ident);
    } catch (NoSuchViewException e) {
      throw new IllegalStateException("view " + fullName(ident) + " vanished after creation", e);
    }
  }

  @Override
  public View replaceView(Identifier ident, View view) throws NoSuchViewException {
    SharedInputs.check(name);
    Identifier mapped;
    try {
      mapped = mapTable(ident);
    } catch (NoSuchTableException e) {
      throw new NoSuchViewException(userIdentifier(ident));
    }
    if (views().load(mapped) == null) {
      throw new NoSuchViewException(userIdentifier(ident));
    }
    views().create(mapped, view, true);
    return loadView(ident);
  }

  @Override
  public boolean dropView(Identifier ident) {
    SharedInputs.check(name);
    try {
      return views().drop(mapTable(ident));
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  @Override
  public void renameView(Identifier oldIdent, Identifier newIdent)
      throws NoSuchViewException, ViewAlreadyExistsException {
    SharedInputs.check(name);
    Identifier from;
    Identifier to;
    try {
      from = mapTable(oldIdent);
      to = renameTarget(oldIdent, newIdent);
    } catch (NoSuchTableException | NoSuchNamespaceException e) {
      throw new NoSuchViewException(userIdentifier(oldIdent));
    }
    if (views().load(from) == null) {
      throw new NoSuchViewException(userIdentifier(oldIdent));
    }
    if (tables().tableExists(to)) {
      throw new ViewAlreadyExistsException(userIdentifier(newIdent));
    }
    views().rename(from, to);
  }

  // ---- schemas ---------------------------------------------------------------------------

  @Override
  public String[][] listNamespaces() throws NoSuchNamespaceException {
    String prefix = name + SEPARATOR;
    List<String[]> schemas = new ArrayList<>();
    for (String[] db : namespaces().listNamespaces()) {
      if (db.length == 1 && db[0].startsWith(prefix) && db[0].length() > prefix.length()) {
        schemas.add(new String[] {db[0].substring(prefix.length())});
      }
    }
    return schemas.toArray(new String[0][]);
  }

  @Override
  public String[][] listNamespaces(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length == 0) {
      return listNamespaces();
    }
    if (namespaceExists(namespace)) {
      return new String[0][];
    }
    throw new NoSuchNamespaceException(userNamespace(namespace));
  }

  @Override
  public boolean namespaceExists(String[] namespace) {
    return namespace.length == 1
        && namespaces().namespaceExists(new String[] {database(namespace[0])});
  }

  @Override
  public Map<String, String> loadNamespaceMetadata(String[] namespace)
      throws NoSuchNamespaceException {
    try {
      return namespaces().loadNamespaceMetadata(mapNamespace(namespace));
    } catch (NoSuchNamespaceException e) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
  }

  @Override
  public void createNamespace(String[] namespace, Map<String, String> metadata)
      throws NamespaceAlreadyExistsException {
    SharedInputs.check(name);
    if (namespace.length != 1) {
      throw new IllegalArgumentException(
          "a schema name has one part: " + String.join(".", userNamespace(namespace)));
    }
    try {
      namespaces().createNamespace(new String[] {database(namespace[0])}, metadata);
    } catch (NamespaceAlreadyExistsException e) {
      throw new NamespaceAlreadyExistsException(userNamespace(namespace));
    }
  }

  @Override
  public void alterNamespace(String[] namespace, NamespaceChange... changes)
      throws NoSuchNamespaceException {
    SharedInputs.check(name);
    namespaces().alterNamespace(mapNamespace(namespace), changes);
  }

  @Override
  public boolean dropNamespace(String[] namespace, boolean cascade)
      throws NoSuchNamespaceException, NonEmptyNamespaceException {
    SharedInputs.check(name);
    try {
      return namespaces().dropNamespace(mapNamespace(namespace), cascade);
    } catch (NonEmptyNamespaceException e) {
      throw new NonEmptyNamespaceException(userNamespace(namespace));
    } catch (AnalysisException e) {
      if ("SCHEMA_NOT_EMPTY".equals(e.getCondition())) {
        throw new NonEmptyNamespaceException(userNamespace(namespace));
      }
      throw e;
    }
  }
}
