/** berth's own version, kept in step with package.json by the build. */
export const BERTH_VERSION = "0.5.0";
